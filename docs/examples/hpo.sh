# A command per point: the point in input.json, the result in output.json (PanDA/iDDS HPO)
idds hpo launch examples/command/study.yaml --no-progress
idds hpo show sgd-digits                         # trials: state, attempt, site, value, params
idds hpo logs sgd-digits 0                       # trial 0's stdout and stderr
idds hpo export sgd-digits --to sqlite:///optuna.db   # into an Optuna storage
