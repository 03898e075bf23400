build-t/engine/classify_train.o: engine/classify_train.c \
 engine/classify_int.h include/text.h include/classify.h include/rules.h \
 include/kefu.h
engine/classify_int.h:
include/text.h:
include/classify.h:
include/rules.h:
include/kefu.h:
