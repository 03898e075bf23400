build-t/engine/kb.o: engine/kb.c include/kb.h include/rules.h \
 include/arena.h engine/kb_int.h include/rules.h include/text.h \
 include/kefu.h
include/kb.h:
include/rules.h:
include/arena.h:
engine/kb_int.h:
include/rules.h:
include/text.h:
include/kefu.h:
