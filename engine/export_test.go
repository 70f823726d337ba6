package engine

// SetCrashHook makes f run at the engine's crash points: "commit.before-log",
// "commit.after-log" (the log committed, the state DB not yet),
// "commit.after-state" and "restore" (after each batch of a changelog
// replay). Tests only; set it before Run.
func SetCrashHook(f func(point string)) { crashHook = f }
