"""A project with no tables of its own: the adversarial tests attack its file storage."""

from reactive import define_schema

schema = define_schema({})
