"""Every top-level `params:` section and its model; the project hook checks that no other
top-level key is given (a typo such as `planing` would otherwise be ignored)."""


from flops_fit.parameters.analysis import AnalysisConfig
from flops_fit.parameters.base import Section
from flops_fit.parameters.corpus import CorpusConfig
from flops_fit.parameters.planning import PlanningConfig
from flops_fit.parameters.reporting import ReportingConfig
from flops_fit.parameters.study import StudyConfig
from flops_fit.parameters.torch_backend import TorchConfig
from flops_fit.parameters.training import TrainingConfig

SECTIONS: dict[str, type[Section]] = {
    model.SECTION: model
    for model in (
        PlanningConfig,
        CorpusConfig,
        TrainingConfig,
        TorchConfig,
        AnalysisConfig,
        ReportingConfig,
        StudyConfig,
    )
}
