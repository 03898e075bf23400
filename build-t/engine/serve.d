build-t/engine/serve.o: engine/serve.c include/serve.h include/dialog.h \
 include/rules.h include/text.h include/http.h include/api.h \
 include/dialog.h include/metrics.h include/webhook.h include/kefu.h \
 include/log.h include/redact.h include/rules.h include/webhook.h
include/serve.h:
include/dialog.h:
include/rules.h:
include/text.h:
include/http.h:
include/api.h:
include/dialog.h:
include/metrics.h:
include/webhook.h:
include/kefu.h:
include/log.h:
include/redact.h:
include/rules.h:
include/webhook.h:
