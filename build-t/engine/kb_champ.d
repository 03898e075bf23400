build-t/engine/kb_champ.o: engine/kb_champ.c engine/kb_int.h \
 include/rules.h include/text.h include/kefu.h
engine/kb_int.h:
include/rules.h:
include/text.h:
include/kefu.h:
