//! The Arrow schema of raw segments (lake files: see `lake.rs`).

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

pub(crate) const TOPIC: &str = "topic";
pub(crate) const PARTITION: &str = "partition";
pub(crate) const RELATIVE_OFFSET: &str = "relative_offset";
/// Lake files carry absolute offsets instead.
pub(crate) const OFFSET: &str = "offset";
pub(crate) const TIMESTAMP: &str = "timestamp";
pub(crate) const KEY: &str = "key";
pub(crate) const VALUE: &str = "value";
pub(crate) const HEADERS: &str = "headers";

pub(crate) fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

pub(crate) fn header_item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(header_fields()), false))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(TOPIC, DataType::Utf8, false),
        Field::new(PARTITION, DataType::Int32, false),
        Field::new(RELATIVE_OFFSET, DataType::Int32, false),
        Field::new(
            TIMESTAMP,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new(KEY, DataType::Binary, true),
        Field::new(VALUE, DataType::Binary, true),
        Field::new(HEADERS, DataType::List(header_item_field()), false),
    ]))
});

pub(crate) fn segment_schema() -> SchemaRef {
    SCHEMA.clone()
}
