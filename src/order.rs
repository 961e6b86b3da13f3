//! [`Order`]: oldest or newest first.

/// The order of a read by publication (the store's sequence): oldest or
/// newest first.
///
/// The one order of the workspace: the store's reads
/// (`agentbus_store::ReadQuery`), the web API's `order` parameter and the
/// CLI's `--order` take it.
///
/// ```
/// use agentbus::Order;
///
/// assert_eq!(Order::default(), Order::Ascending);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// Oldest first (the default).
    #[default]
    Ascending,
    /// Newest first.
    Descending,
}
