build-t/engine/rules_compile.o: engine/rules_compile.c include/kefu.h \
 engine/rules_build.h engine/rules_int.h include/arena.h include/rules.h \
 include/text.h
include/kefu.h:
engine/rules_build.h:
engine/rules_int.h:
include/arena.h:
include/rules.h:
include/text.h:
