build-t/engine/kb_ex.o: engine/kb_ex.c include/kb.h include/rules.h \
 engine/kb_int.h include/rules.h include/text.h include/kefu.h
include/kb.h:
include/rules.h:
engine/kb_int.h:
include/rules.h:
include/text.h:
include/kefu.h:
