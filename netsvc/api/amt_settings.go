package api

// settingsRoutes are the device settings and power routes beyond state and
// action (spec/redirection.md §7.2).
func (s *Service) settingsRoutes() []route { return nil }
