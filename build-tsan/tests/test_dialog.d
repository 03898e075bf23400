build-tsan/tests/test_dialog.o: tests/test_dialog.c include/dialog.h \
  include/rules.h include/text.h include/kefu.h

include/dialog.h:

include/rules.h:

include/text.h:

include/kefu.h:
