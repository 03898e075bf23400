build-t/engine/log.o: engine/log.c include/log.h include/redact.h
include/log.h:
include/redact.h:
