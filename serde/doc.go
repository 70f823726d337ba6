// Package serde turns typed keys and values into bytes and back.
//
// A Serde[T] is a pair of pure functions; eddy calls them on the per-record
// path, so built-in serdes allocate as little as they can. The built-ins cover
// strings, raw bytes, big-endian integers and JSON; a user plugs in protobuf,
// Avro or anything else by implementing the two methods.
//
//	views := topology.Stream(b, "views", serde.String(), serde.JSON[PageView]())
//
// Serdes are safe for concurrent use: eddy shares one value across tasks.
package serde
