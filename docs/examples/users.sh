token=$(idds users add alice | sed 's/.*: //')   # the first user is an admin; its token
export IDDS_TOKEN=$token                         # act as alice from now on
idds users add bob                               # prints bob's token, shown only now
idds whoami                                      # alice (admin)
idds users list
idds users remove bob
