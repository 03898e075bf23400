build-tsan/tests/fake_dialog.o: tests/fake_dialog.c include/dialog.h \
  include/rules.h include/text.h include/kefu.h include/metrics.h

include/dialog.h:

include/rules.h:

include/text.h:

include/kefu.h:

include/metrics.h:
