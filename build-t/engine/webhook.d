build-t/engine/webhook.o: engine/webhook.c include/webhook.h \
 include/kefu.h include/log.h
include/webhook.h:
include/kefu.h:
include/log.h:
