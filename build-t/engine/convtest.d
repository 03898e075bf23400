build-t/engine/convtest.o: engine/convtest.c include/convtest.h \
 include/dialog.h include/rules.h include/text.h include/kefu.h
include/convtest.h:
include/dialog.h:
include/rules.h:
include/text.h:
include/kefu.h:
