build-t/engine/http.o: engine/http.c include/http.h include/api.h \
 include/dialog.h include/rules.h include/text.h include/metrics.h \
 include/webhook.h include/kefu.h include/log.h include/metrics.h
include/http.h:
include/api.h:
include/dialog.h:
include/rules.h:
include/text.h:
include/metrics.h:
include/webhook.h:
include/kefu.h:
include/log.h:
include/metrics.h:
