build-tsan/tests/test_webhook.o: tests/test_webhook.c include/api.h \
  include/dialog.h include/rules.h include/text.h include/metrics.h \
  include/webhook.h include/kefu.h include/log.h

include/api.h:

include/dialog.h:

include/rules.h:

include/text.h:

include/metrics.h:

include/webhook.h:

include/kefu.h:

include/log.h:
