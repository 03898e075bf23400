build-t/engine/rules.o: engine/rules.c include/rules.h include/kefu.h \
 engine/rules_build.h engine/rules_int.h include/arena.h include/text.h
include/rules.h:
include/kefu.h:
engine/rules_build.h:
engine/rules_int.h:
include/arena.h:
include/text.h:
