build-t/engine/api.o: engine/api.c include/api.h include/dialog.h \
 include/rules.h include/text.h include/metrics.h include/webhook.h \
 include/kefu.h include/log.h include/rate.h include/rules.h \
 include/text.h
include/api.h:
include/dialog.h:
include/rules.h:
include/text.h:
include/metrics.h:
include/webhook.h:
include/kefu.h:
include/log.h:
include/rate.h:
include/rules.h:
include/text.h:
