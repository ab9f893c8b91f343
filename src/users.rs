//! Who a submission's user is. JupyterHub users are named by the Hub; users of the other
//! doors live in namespaces the Hub door refuses (so no Hub user can take their names or
//! see their submissions), and their scores go back through their own door, never to edX
//! over LTI.

/// XQueue learners: `xqueue:<queue>:<anonymous id>` (`crate::xqueue`).
pub const XQUEUE_PREFIX: &str = "xqueue:";
/// Platforms' users: `platform:<platform>:<its user id>` (`crate::platform`).
pub const PLATFORM_PREFIX: &str = "platform:";

/// Whether `user` is a JupyterHub user (not in another door's namespace).
pub fn is_hub_user(user: &str) -> bool {
    reserved_by(user).is_none()
}

/// The door whose namespace `user` is in, if any.
pub fn reserved_by(user: &str) -> Option<&'static str> {
    if user.starts_with(XQUEUE_PREFIX) {
        Some("learners who submit through XQueue")
    } else if user.starts_with(PLATFORM_PREFIX) {
        Some("users of platforms that submit through the platform API")
    } else {
        None
    }
}

/// The user a platform's user id is stored as.
pub fn platform_user(platform: &str, id: &str) -> String {
    format!("{PLATFORM_PREFIX}{platform}:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_doors_users_are_never_hub_users() {
        assert!(is_hub_user("alice"));
        assert!(is_hub_user("platformer"));
        assert!(!is_hub_user("xqueue:q:abc"));
        assert!(!is_hub_user(&platform_user("lms", "alice")));
        assert_eq!(platform_user("lms", "alice"), "platform:lms:alice");
    }
}
