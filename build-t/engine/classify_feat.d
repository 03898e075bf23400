build-t/engine/classify_feat.o: engine/classify_feat.c \
 engine/classify_int.h include/text.h include/classify.h include/rules.h \
 include/kefu.h
engine/classify_int.h:
include/text.h:
include/classify.h:
include/rules.h:
include/kefu.h:
