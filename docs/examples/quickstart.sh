idds hpo launch examples/quickstart/study.yaml   # 30 evaluations, 2 at a time, then the best
idds hpo list                                    # every study: state, points done, best
idds hpo show svc-digits                         # its trials, failures and the best point
