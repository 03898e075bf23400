build-t/engine/dialog_erase.o: engine/dialog_erase.c engine/dialog_int.h \
 include/dialog.h include/rules.h include/text.h include/kb.h \
 include/queue.h include/router.h include/rules.h include/store.h \
 include/kefu.h include/text.h
engine/dialog_int.h:
include/dialog.h:
include/rules.h:
include/text.h:
include/kb.h:
include/queue.h:
include/router.h:
include/rules.h:
include/store.h:
include/kefu.h:
include/text.h:
