package api

// logRoutes are the device log, user consent and alarm clock routes
// (spec/redirection.md §7.2).
func (s *Service) logRoutes() []route { return nil }
