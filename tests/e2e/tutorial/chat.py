import cherrypy
from pyorbited.simple import Client
orbited = Client()
orbited.connect()

class ChatServer(object):
    users = []
    def user_keys(self):
        return ['%s, %s, /cherrychat' % (u, s) for u,s in self.users]

    @cherrypy.expose
    def join(self, user, session='0', ie_nocache=None):
        if (user, session) not in self.users:
            self.users.append((user, session))
            orbited.event(self.user_keys(), '<b>%s joined</b>' % user)

    @cherrypy.expose
    def msg(self, user, msg,session='0', ie_nocache=None):
        orbited.event(self.user_keys(), '<b>%s</b> %s' % (user, msg))

if __name__ == '__main__':
    import os
    current_dir = os.path.dirname(os.path.abspath(__file__))
    # Set up site-wide config first so we get a log if errors occur.
    cherrypy.config.update({'environment': 'production',
                            'log.screen': True,
                            'server.socket_port': 4700,
                            'server.thread_pool': 0,
                            'tools.staticdir.root': current_dir})

    conf = {'/static': {'tools.staticdir.on': True,
                        'tools.staticdir.dir': 'static'}}
    cherrypy.quickstart(ChatServer(), '/', config=conf)
