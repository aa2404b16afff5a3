//! Which clock a client's engine counts time in.

/// The engine's clock: what `keepUnusedDataFor` (L7) counts in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// Real time.
    #[default]
    System,
    /// Virtual time that moves only with `Client::advance`: tests run L7's waits without sleeping.
    Manual,
}
