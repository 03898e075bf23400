build-tsan/tests/test_http.o: tests/test_http.c include/api.h \
  include/dialog.h include/rules.h include/text.h include/metrics.h \
  include/webhook.h include/http.h include/kefu.h include/log.h \
  include/rate.h

include/api.h:

include/dialog.h:

include/rules.h:

include/text.h:

include/metrics.h:

include/webhook.h:

include/http.h:

include/kefu.h:

include/log.h:

include/rate.h:
