"""Published models: model cards (:mod:`.cards`), ``restore publish`` (:mod:`.publish`), and published models as
callables for the CLI and the demo (:mod:`.pipelines`)."""
