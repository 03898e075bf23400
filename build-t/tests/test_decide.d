build-t/tests/test_decide.o: tests/test_decide.c include/decide.h \
 include/classify.h include/rules.h include/kb.h include/router.h \
 include/kb.h include/kefu.h
include/decide.h:
include/classify.h:
include/rules.h:
include/kb.h:
include/router.h:
include/kb.h:
include/kefu.h:
