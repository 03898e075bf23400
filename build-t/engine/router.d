build-t/engine/router.o: engine/router.c include/router.h include/rules.h \
 include/kefu.h engine/rules_int.h include/arena.h include/rules.h \
 include/text.h
include/router.h:
include/rules.h:
include/kefu.h:
engine/rules_int.h:
include/arena.h:
include/rules.h:
include/text.h:
