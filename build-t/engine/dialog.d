build-t/engine/dialog.o: engine/dialog.c engine/dialog_int.h \
 include/dialog.h include/rules.h include/text.h include/kb.h \
 include/queue.h include/router.h include/rules.h include/store.h \
 include/decide.h include/classify.h include/kb.h include/router.h \
 include/kefu.h include/log.h include/redact.h include/text.h
engine/dialog_int.h:
include/dialog.h:
include/rules.h:
include/text.h:
include/kb.h:
include/queue.h:
include/router.h:
include/rules.h:
include/store.h:
include/decide.h:
include/classify.h:
include/kb.h:
include/router.h:
include/kefu.h:
include/log.h:
include/redact.h:
include/text.h:
