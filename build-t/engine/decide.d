build-t/engine/decide.o: engine/decide.c include/decide.h \
 include/classify.h include/rules.h include/kb.h include/router.h \
 include/kefu.h include/text.h
include/decide.h:
include/classify.h:
include/rules.h:
include/kb.h:
include/router.h:
include/kefu.h:
include/text.h:
