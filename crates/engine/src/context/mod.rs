//! Context for judging where a call comes from and what made it, as the world behaves:
//! source addresses by the providers' published ranges ([`network`]) and, with a table
//! loaded, public ones by autonomous system ([`asn`]), user agents by
//! client family and major version ([`client`]). State keeps the identity's history at
//! these granularities, so a runner on a new GitHub-hosted address or an SDK naming each
//! call in its user agent is not novel, and a key used from a network class it never used is.
//! Which actions are one kind of work ([`actions`]): a role-managing pipeline's first
//! `CreateRole` after its `PutRolePolicy`s is its routine.

pub mod actions;
pub mod asn;
pub mod client;
pub(crate) mod memo;
pub mod network;
