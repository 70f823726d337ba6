package engine

// crashHook, when set (by tests, through export_test.go), is called at
// named points of the commit protocol and of restore, so a crash test can
// kill the process exactly there. It is nil in production.
var crashHook func(point string)

func crashPoint(point string) {
	if crashHook != nil {
		crashHook(point)
	}
}
