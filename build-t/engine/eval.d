build-t/engine/eval.o: engine/eval.c include/eval.h include/decide.h \
 include/classify.h include/rules.h include/kb.h include/router.h \
 include/kefu.h include/text.h
include/eval.h:
include/decide.h:
include/classify.h:
include/rules.h:
include/kb.h:
include/router.h:
include/kefu.h:
include/text.h:
