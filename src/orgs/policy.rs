//! Who may do what in an organisation: the role × action table and the rules for changing a
//! membership. Pure: the guard and the services ask, this module answers.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A member's role, lowest first (the order is the rank).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    Member,
    Admin,
    Owner,
}

impl OrgRole {
    pub const ALL: [OrgRole; 3] = [OrgRole::Member, OrgRole::Admin, OrgRole::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What a route or service does to an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// See the organisation and its members.
    Read,
    /// Rename it or change its slug.
    Update,
    /// Delete it.
    Delete,
    /// Change members' roles and remove members.
    ManageMembers,
    /// Invite people, list and revoke pending invitations.
    InviteMembers,
    /// See and buy for the organisation; change its billing email.
    ManageBilling,
    /// Create, list and revoke the organisation's API keys.
    ManageApiKeys,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Read,
        Action::Update,
        Action::Delete,
        Action::ManageMembers,
        Action::InviteMembers,
        Action::ManageBilling,
        Action::ManageApiKeys,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::ManageMembers => "manage_members",
            Self::InviteMembers => "invite_members",
            Self::ManageBilling => "manage_billing",
            Self::ManageApiKeys => "manage_api_keys",
        }
    }
}

/// The table: may `role` do `action`?
pub fn allows(role: OrgRole, action: Action) -> bool {
    use Action as A;
    match action {
        A::Read => true,
        A::Update | A::ManageMembers | A::InviteMembers | A::ManageBilling | A::ManageApiKeys => {
            role >= OrgRole::Admin
        }
        A::Delete => role == OrgRole::Owner,
    }
}

/// What an API key may be allowed to do: the actions a program acts on. Membership, invitations,
/// keys and deletion stay with people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Scope {
    /// See the organisation and its members.
    #[serde(rename = "org:read")]
    OrgRead,
    /// Rename the organisation or change its slug.
    #[serde(rename = "org:write")]
    OrgWrite,
    /// See and buy for the organisation.
    #[serde(rename = "billing:write")]
    BillingWrite,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::OrgRead, Scope::OrgWrite, Scope::BillingWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgRead => "org:read",
            Self::OrgWrite => "org:write",
            Self::BillingWrite => "billing:write",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// The action the scope allows.
    pub fn action(self) -> Action {
        match self {
            Self::OrgRead => Action::Read,
            Self::OrgWrite => Action::Update,
            Self::BillingWrite => Action::ManageBilling,
        }
    }
}

/// May a key with `scopes` do `action`?
pub fn key_allows(scopes: &[Scope], action: Action) -> bool {
    scopes.iter().any(|scope| scope.action() == action)
}

/// A change to one membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    SetRole(OrgRole),
    Remove,
}

/// The membership a change is aimed at, as it stands (read under the org's lock).
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub role: OrgRole,
    /// The actor changes their own membership (a member may always leave).
    pub is_self: bool,
    /// The account whose personal organisation this is: it stays its owner.
    pub personal_owner: bool,
}

/// Why a change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The actor's role does not allow it (403).
    NotAllowed(&'static str),
    /// It would leave the organisation without an owner (409).
    LastOwner,
    /// The owner of a personal organisation stays its owner (409).
    PersonalOwner,
}

/// May `actor` make `change` to `target`, the organisation having `owners` owners?
pub fn check_change(
    actor: OrgRole,
    target: Target,
    change: Change,
    owners: usize,
) -> Result<(), Refusal> {
    if change == Change::SetRole(target.role) {
        return Ok(());
    }
    let leaving = change == Change::Remove && target.is_self;
    if !leaving {
        if !allows(actor, Action::ManageMembers) {
            return Err(Refusal::NotAllowed(
                "changing members needs the admin or owner role",
            ));
        }
        let touches_owner =
            target.role == OrgRole::Owner || change == Change::SetRole(OrgRole::Owner);
        if touches_owner && actor != OrgRole::Owner {
            return Err(Refusal::NotAllowed(
                "only an owner may grant or take the owner role",
            ));
        }
    }
    if target.role == OrgRole::Owner {
        if target.personal_owner {
            return Err(Refusal::PersonalOwner);
        }
        if owners <= 1 {
            return Err(Refusal::LastOwner);
        }
    }
    Ok(())
}

/// Does `change` hand over or take away ownership? Those need a fresh second factor (when the
/// actor has MFA), like deleting the organisation.
pub fn is_ownership_change(target: OrgRole, change: Change) -> bool {
    match change {
        Change::SetRole(role) => (role == OrgRole::Owner) != (target == OrgRole::Owner),
        Change::Remove => target == OrgRole::Owner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action as A;
    use OrgRole::{Admin, Member, Owner};

    #[test]
    fn the_table_is_exactly_this() {
        // (action, member, admin, owner)
        let expected = [
            (A::Read, true, true, true),
            (A::Update, false, true, true),
            (A::Delete, false, false, true),
            (A::ManageMembers, false, true, true),
            (A::InviteMembers, false, true, true),
            (A::ManageBilling, false, true, true),
            (A::ManageApiKeys, false, true, true),
        ];
        assert_eq!(expected.len(), A::ALL.len(), "every action has a row");
        for (action, member, admin, owner) in expected {
            assert_eq!(allows(Member, action), member, "member {action:?}");
            assert_eq!(allows(Admin, action), admin, "admin {action:?}");
            assert_eq!(allows(Owner, action), owner, "owner {action:?}");
        }
    }

    #[test]
    fn a_higher_role_may_do_everything_a_lower_one_may() {
        for action in A::ALL {
            assert!(!allows(Member, action) || allows(Admin, action));
            assert!(!allows(Admin, action) || allows(Owner, action));
        }
    }

    #[test]
    fn keys_do_only_what_their_scopes_name() {
        for action in A::ALL {
            assert!(!key_allows(&[], action));
            let all = key_allows(&Scope::ALL, action);
            let expected = matches!(action, A::Read | A::Update | A::ManageBilling);
            assert_eq!(all, expected, "{action:?}: people only for the rest");
        }
        assert!(key_allows(&[Scope::OrgRead], A::Read));
        assert!(!key_allows(&[Scope::OrgRead], A::Update));
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            assert!(
                allows(Admin, scope.action()),
                "an admin may grant {scope:?}"
            );
        }
    }

    #[test]
    fn roles_round_trip_their_names() {
        for role in OrgRole::ALL {
            assert_eq!(OrgRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(OrgRole::parse("Owner"), None);
    }

    fn target(role: OrgRole, is_self: bool) -> Target {
        Target {
            role,
            is_self,
            personal_owner: false,
        }
    }

    fn changes() -> Vec<Change> {
        let mut all: Vec<Change> = OrgRole::ALL.into_iter().map(Change::SetRole).collect();
        all.push(Change::Remove);
        all
    }

    #[test]
    fn no_change_ever_leaves_an_org_without_an_owner() {
        for actor in OrgRole::ALL {
            for role in OrgRole::ALL {
                for is_self in [false, true] {
                    for change in changes() {
                        let demotes_owner = role == Owner && change != Change::SetRole(Owner);
                        let result = check_change(actor, target(role, is_self), change, 1);
                        if demotes_owner {
                            assert!(result.is_err(), "{actor:?} {role:?} {change:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn members_change_nobody_but_may_leave() {
        for role in OrgRole::ALL {
            for change in changes() {
                if change == Change::SetRole(role) {
                    continue;
                }
                assert!(check_change(Member, target(role, false), change, 2).is_err());
            }
        }
        assert_eq!(
            check_change(Member, target(Member, true), Change::Remove, 2),
            Ok(())
        );
        assert!(check_change(Member, target(Member, true), Change::SetRole(Admin), 2).is_err());
    }

    #[test]
    fn admins_manage_members_and_admins_but_not_owners() {
        assert_eq!(
            check_change(Admin, target(Member, false), Change::SetRole(Admin), 1),
            Ok(())
        );
        assert_eq!(
            check_change(Admin, target(Admin, false), Change::Remove, 1),
            Ok(())
        );
        for change in [Change::SetRole(Admin), Change::Remove] {
            assert!(matches!(
                check_change(Admin, target(Owner, false), change, 2),
                Err(Refusal::NotAllowed(_))
            ));
        }
        assert!(matches!(
            check_change(Admin, target(Member, false), Change::SetRole(Owner), 2),
            Err(Refusal::NotAllowed(_))
        ));
        assert!(matches!(
            check_change(Admin, target(Admin, true), Change::SetRole(Owner), 2),
            Err(Refusal::NotAllowed(_))
        ));
    }

    #[test]
    fn owners_may_hand_over_and_step_down_while_another_owner_remains() {
        assert_eq!(
            check_change(Owner, target(Member, false), Change::SetRole(Owner), 1),
            Ok(())
        );
        assert_eq!(
            check_change(Owner, target(Owner, true), Change::SetRole(Admin), 2),
            Ok(())
        );
        assert_eq!(
            check_change(Owner, target(Owner, true), Change::SetRole(Admin), 1),
            Err(Refusal::LastOwner)
        );
        assert_eq!(
            check_change(Owner, target(Owner, true), Change::Remove, 1),
            Err(Refusal::LastOwner)
        );
    }

    #[test]
    fn a_personal_orgs_owner_stays_its_owner() {
        let personal = Target {
            role: Owner,
            is_self: true,
            personal_owner: true,
        };
        for change in [Change::Remove, Change::SetRole(Member)] {
            assert_eq!(
                check_change(Owner, personal, change, 3),
                Err(Refusal::PersonalOwner)
            );
        }
    }

    #[test]
    fn ownership_changes_are_recognised() {
        assert!(is_ownership_change(Member, Change::SetRole(Owner)));
        assert!(is_ownership_change(Owner, Change::SetRole(Admin)));
        assert!(is_ownership_change(Owner, Change::Remove));
        assert!(!is_ownership_change(Owner, Change::SetRole(Owner)));
        assert!(!is_ownership_change(Member, Change::SetRole(Admin)));
        assert!(!is_ownership_change(Admin, Change::Remove));
    }
}
