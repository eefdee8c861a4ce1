//! [`builder_setters!`]: turns a builder's list of options into its setter
//! methods. Each builder keeps its list in one macro (for example
//! `producer_builder_options!`), which the async builder expands with this
//! macro and the blocking twin with `blocking::forward::forward_setters!`:
//! one list, so the two faces of the API cannot drift apart.
//!
//! An item is written `fn name(b, arg: Type) { b.field = arg; }`: the body
//! works on `b: &mut Self`; generic parameters go in `<T>` and their bounds
//! in `where [T: Bound]`.

/// Expands option items into `pub fn name(mut self, ...) -> Self` setters.
macro_rules! builder_setters {
    ($(
        $(#[$attr:meta])*
        fn $name:ident $(<$($gen:ident),+>)? ($this:ident $(, $arg:ident : $ty:ty)*) $(where [$($bound:tt)*])? $body:block
    )*) => {$(
        $(#[$attr])*
        pub fn $name $(<$($gen),+>)? (mut self $(, $arg: $ty)*) -> Self $(where $($bound)*)? {
            let $this = &mut self;
            $body
            self
        }
    )*};
}
pub(crate) use builder_setters;
