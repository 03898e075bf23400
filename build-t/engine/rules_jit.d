build-t/engine/rules_jit.o: engine/rules_jit.c include/kefu.h \
 include/log.h engine/rules_int.h include/arena.h include/rules.h
include/kefu.h:
include/log.h:
engine/rules_int.h:
include/arena.h:
include/rules.h:
