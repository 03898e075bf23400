build-tsan/engine/dialog.o: engine/dialog.c engine/dialog_int.h \
  include/dialog.h include/rules.h include/text.h include/kb.h \
  include/queue.h include/router.h include/store.h include/decide.h \
  include/kefu.h include/redact.h

engine/dialog_int.h:

include/dialog.h:

include/rules.h:

include/text.h:

include/kb.h:

include/queue.h:

include/router.h:

include/store.h:

include/decide.h:

include/kefu.h:

include/redact.h:
