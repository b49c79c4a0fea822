idds sites list --sites examples/sites/sites.yaml   # or IDDS_SITES=examples/sites/sites.yaml
