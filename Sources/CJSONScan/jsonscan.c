// The scanning helpers are inline functions in include/cjsonscan.h; this file gives the target a source.
#include "cjsonscan.h"
