package manaauth

// The one definition of the role and kind values this backend acts on.
const (
	// RoleAdmin is the role claim (and user role) of platform admins. Only
	// exactly this value is an admin; see the README on the upstream quirk
	// of tokens minted with role "user".
	RoleAdmin = "admin"
	// KindPersona is the kind of a user stamped as a persona.
	KindPersona = "persona"
)

// IsAdminRole reports whether role is the admin role.
func IsAdminRole(role string) bool { return role == RoleAdmin }

// IsAdmin reports whether the user is a platform admin.
func (u *User) IsAdmin() bool { return u != nil && IsAdminRole(u.Role) }

// IsPersona reports whether the user is stamped as a persona.
func (u *User) IsPersona() bool { return u != nil && u.Kind == KindPersona }
