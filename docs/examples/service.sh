idds hpo launch examples/quickstart/study.yaml --detach   # only recorded
idds serve --until-idle        # a head runs what no live head holds, then stops
idds hpo list
