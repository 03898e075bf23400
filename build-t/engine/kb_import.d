build-t/engine/kb_import.o: engine/kb_import.c include/kb.h \
 include/rules.h engine/kb_int.h include/rules.h include/text.h \
 include/kefu.h
include/kb.h:
include/rules.h:
engine/kb_int.h:
include/rules.h:
include/text.h:
include/kefu.h:
