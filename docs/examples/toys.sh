idds toys launch docs/examples/quick-scan.yaml   # check, record, run: one line per step
idds toys show quick-scan --points               # limits with errors, CLs at every point;
                                                 # writes quick-scan-cls.png
idds toys list                                   # scans: state, points, toys, observed limit
