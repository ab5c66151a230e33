package amtsim

// addSettingsClasses adds the settings, boot and power classes the console
// API uses to the class table.
func addSettingsClasses(t map[string]*classHandler) {}
