"""The old import path of the model API and the runner, kept for models written against it
(``from kuairec_db.hooks import ModelContext``). New code imports ``kuairec_db.modelapi``
(what a model author uses) and ``kuairec_db.runner`` (finding and running the models)."""

from kuairec_db.modelapi import (  # noqa: F401
    PIPELINE_MEMORY_LIMIT,
    ContractSink,
    ModelContext,
    ScoreSink,
    Setting,
)
from kuairec_db.runner import (  # noqa: F401
    OTHER_MODELS_OUTPUTS,
    Model,
    clear_model,
    discover,
    load_module,
    model_defaults,
    model_memory,
    model_setting_types,
    out_of_memory,
    run_model,
)
