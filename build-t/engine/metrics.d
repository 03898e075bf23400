build-t/engine/metrics.o: engine/metrics.c include/metrics.h \
 include/text.h include/kefu.h
include/metrics.h:
include/text.h:
include/kefu.h:
