#include "clz4.h"
