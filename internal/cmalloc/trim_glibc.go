//go:build linux && cgo

package cmalloc

/*
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static int eddy_malloc_trim(void) {
#if defined(__GLIBC__)
	malloc_trim(0);
	return 1;
#else
	return 0;
#endif
}
*/
import "C"

func trim() bool { return C.eddy_malloc_trim() == 1 }
