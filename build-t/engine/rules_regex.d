build-t/engine/rules_regex.o: engine/rules_regex.c engine/rules_int.h \
 include/arena.h include/rules.h
engine/rules_int.h:
include/arena.h:
include/rules.h:
