//! Client messages (incremental parse) and server messages (serialize). Implementation pending.
