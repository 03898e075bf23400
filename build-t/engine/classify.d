build-t/engine/classify.o: engine/classify.c include/classify.h \
 include/rules.h engine/classify_int.h include/text.h include/kefu.h \
 include/log.h
include/classify.h:
include/rules.h:
engine/classify_int.h:
include/text.h:
include/kefu.h:
include/log.h:
